"""Remote watch as two machines use it, on loopback: a real `pmctl up` with [remote] enabled serves
tcp with CURVE; clients with homes of their own (their own keys, no access to the server's ipc
sockets or database) run `pmctl watch --once --connect` and `pmctl status --connect`.

- an allowed client renders the frame and the status table;
- a client whose key is not allowed, and one without CURVE at all, get nothing, and pmctl says so
  in one line within a few seconds; allowing the key works at the next connection;
- with remote not configured, no pipeline process listens on any tcp port (/proc/net/tcp).
"""

from __future__ import annotations

import json
import shlex
import shutil
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from cli import clients
from pmshared import curve_keys, remote
from pmshared import messages as m
from pmshared.codec import Stamper
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.conftest import REPO
from tests.remote_helpers import free_port_base
from tests.supervisor_helpers import Pipeline, pipeline, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

WORKERS = ["collector", "scorer", "tiering", "recorder", "forensics"]
SILENCE_S = 2.0  # how long a refused client listens for anything at all


class Machine:
    """Another machine's pmctl: a home of its own (keys, config, runtime dir), same code."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.runtime = Path(tempfile.mkdtemp(prefix="pmc", dir="/tmp"))
        self.env = {k: v for k, v in os.environ.items() if k != "PAUSE_MONITOR_CONFIG"}
        self.env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / "config"),
                        XDG_DATA_HOME=str(root / "data"), XDG_RUNTIME_DIR=str(self.runtime))

    def pmctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def generate_keys(self) -> str:
        """Its client public key."""
        assert self.pmctl("keys", "generate").returncode == 0
        return self.pmctl("keys", "show", "--role", "client").stdout.strip()

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture
def machines(tmp_path: Path):
    made: list[Machine] = []

    def make(name: str) -> Machine:
        made.append(Machine(tmp_path / name))
        return made[-1]

    yield make
    for each in made:
        each.close()


def listening_tcp_ports(pids: list[int]) -> set[int]:
    """The tcp ports these processes listen on (their socket inodes matched in /proc/net/tcp*)."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def pipeline_pids(pipeline: Pipeline) -> list[int]:
    return [pipeline.pid, *(w.pid for w in pipeline.workers().values() if w.pid)]


def one_line_error(proc: subprocess.CompletedProcess, *says: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for text in says:
        assert text in proc.stderr, proc.stderr


def start_serving(pipeline: Pipeline, base: int) -> str:
    """Server keys in the pipeline's home, [remote] on loopback; returns the --connect URL."""
    curve_keys.generate("server")
    pipeline.config.write_text(
        "[supervisor]\ngrace_period_s = 3.0\n"
        f'[remote]\nenabled = true\nlisten_host = "127.0.0.1"\nport_base = {base}\n'
    )
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    return f"tcp://127.0.0.1:{base}"


def test_allowed_client_watches_others_get_nothing_and_a_clear_line(pipeline: Pipeline, machines):
    base = free_port_base()
    url = start_serving(pipeline, base)
    server_key = curve_keys.load_public("server")
    # Exactly the four published ports, and only on the processes that own them.
    assert listening_tcp_ports(pipeline_pids(pipeline)) == set(range(base, base + 4))

    friend = machines("friend")
    curve_keys.allow(friend.generate_keys(), "friend")  # on the server
    assert friend.pmctl("keys", "trust", "127.0.0.1", server_key).returncode == 0

    # The frame: the first one can come before tiering has a sample: poll until it has rogues.
    def frame():
        proc = friend.pmctl("watch", "--once", "--connect", url)
        return proc if proc.returncode == 0 and "rogue processes" in proc.stdout else None

    shown = wait_for(frame, 20, "an allowed client's watch --once frame")
    assert "live" in shown.stdout and "tiering" in shown.stdout  # feed state and the workers panel
    assert "remote machine's database" in shown.stdout  # the local DB is not passed off as theirs
    status = friend.pmctl("status", "--connect", url, "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["running"] and doc["supervisor_pid"] == pipeline.pid and doc["tier"] is not None
    assert {w["name"] for w in doc["workers"]} == set(WORKERS)
    table = friend.pmctl("status", "--connect", url)
    assert table.returncode == 0 and "tiering" in table.stdout and "running" in table.stdout

    # Remote watch looks, it does not stop: `down` from an allowed client is refused.
    reply = as_machine(friend, lambda: clients.control("down", target=remote.target(url, server_key)))
    assert reply is not None and not reply.ok and "not accepted over remote watch" in reply.error
    assert pipeline.proc.poll() is None and pipeline.status() is not None

    # A client whose key was never allowed: refused, and told which key to allow, in seconds.
    stranger = machines("stranger")
    stranger_key = stranger.generate_keys()
    assert stranger.pmctl("keys", "trust", "127.0.0.1", server_key).returncode == 0
    for args in (("watch", "--once", "--connect", url), ("status", "--connect", url)):
        began = time.monotonic()
        proc = stranger.pmctl(*args)
        assert time.monotonic() - began < 8
        one_line_error(proc, "no reply from tcp://127.0.0.1:", "refused this client's key", stranger_key)

    # A client with no keys at all: pmctl says what to do before it sends anything.
    keyless = machines("keyless")
    one_line_error(keyless.pmctl("watch", "--once", "--connect", url, "--server-key", server_key),
                   "pmctl keys generate")

    # A client speaking ZeroMQ without CURVE gets nothing on any published port, while an allowed
    # CURVE subscriber on the same feed gets samples (the feed is flowing).
    assert no_curve_client_gets_nothing(base)
    assert allowed_subscriber_gets_a_sample(friend, url, server_key)

    # Allowing the stranger works at its next connection, without a restart.
    curve_keys.allow(stranger_key, "stranger")
    wait_for(lambda: stranger.pmctl("status", "--connect", url).returncode == 0, 10, "the newly allowed client")


def no_curve_client_gets_nothing(base: int) -> bool:
    ctx = zmq.Context()
    try:
        stamp = Stamper("plain", "x")
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(f"tcp://127.0.0.1:{base + remote.REMOTE_PORTS['snapshot']}")
        dealer.send(ENDPOINTS["snapshot"].codec().encode(stamp(m.SnapshotRequest)))
        control = ctx.socket(zmq.DEALER)
        control.linger = 0
        control.connect(f"tcp://127.0.0.1:{base + remote.REMOTE_PORTS['control']}")
        control.send(ENDPOINTS["control"].codec().encode(stamp(m.ControlRequest, command="status")))
        subs = []
        for name in ("live", "lifecycle"):
            sub = ctx.socket(zmq.SUB)
            sub.linger = 0
            sub.subscribe(b"")
            sub.connect(f"tcp://127.0.0.1:{base + remote.REMOTE_PORTS[name]}")
            subs.append(sub)
        poller = zmq.Poller()
        for sock in (dealer, control, *subs):
            poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + SILENCE_S
        while (left := deadline - time.monotonic()) > 0:
            assert not poller.poll(left * 1000), "a client without CURVE received something"
        return True
    finally:
        ctx.destroy(linger=0)


def as_machine(machine: Machine, action):
    """Run ``action`` in this process with ``machine``'s key files (its data home)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", machine.env["XDG_DATA_HOME"])
        return action()


def allowed_subscriber_gets_a_sample(friend: Machine, url: str, server_key: str) -> bool:
    sockets = Sockets(target=as_machine(friend, lambda: remote.target(url, server_key)))
    try:
        live = sockets.connect("live")
        assert live.poll(10_000), "no live sample for an allowed CURVE subscriber"
        sample = ENDPOINTS["live"].codec().decode(live.recv_multipart()[-1])
        return isinstance(sample, m.LiveSample)
    finally:
        sockets.close()


def test_without_remote_config_no_pipeline_process_listens_on_tcp(pipeline: Pipeline, machines):
    pipeline.config.write_text("[supervisor]\ngrace_period_s = 3.0\n")
    curve_keys.generate("server")  # keys alone do not open anything
    pipeline.start(default_procfile=True)
    pipeline.wait_running(WORKERS, timeout=30)
    assert listening_tcp_ports(pipeline_pids(pipeline)) == set()
    # And a client aimed at the default port base gets the "nothing there" line (no other
    # process may hold it on a shared machine: only asserted when nothing listens there).
    client = machines("client")
    client.generate_keys()
    with socket.socket() as probe:
        nobody = probe.connect_ex(("127.0.0.1", 47301)) != 0
    if nobody:
        proc = client.pmctl("status", "--connect", "tcp://127.0.0.1:47300",
                            "--server-key", curve_keys.load_public("server"))
        one_line_error(proc, "nothing accepts connections")


def test_up_refuses_remote_with_a_world_readable_server_key(pipeline: Pipeline):
    pipeline.config.write_text(f"[remote]\nenabled = true\nport_base = {free_port_base()}\n")
    curve_keys.generate("server")
    os.chmod(curve_keys.secret_path("server"), 0o644)
    proc = pipeline.cli("up")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "readable by others" in proc.stderr and "[remote]" in proc.stderr
    # and without keys at all, the same one line tells how to make them
    os.unlink(curve_keys.secret_path("server"))
    proc = pipeline.cli("up")
    assert proc.returncode == 2 and "pmctl keys generate" in proc.stderr


def test_up_with_a_remote_port_in_use_is_one_line_and_leaves_nothing_running(pipeline: Pipeline):
    base = free_port_base()
    curve_keys.generate("server")
    pipeline.config.write_text(f"[remote]\nenabled = true\nport_base = {base}\n")
    with socket.socket() as squatter:  # someone else holds the control port
        squatter.bind(("127.0.0.1", base + remote.REMOTE_PORTS["control"]))
        squatter.listen()
        proc = pipeline.cli("up")
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"tcp://127.0.0.1:{base + 2}" in errors[0] and "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_interactive_remote_watch_shows_the_feed_and_a_refused_one_exits_with_one_line(pipeline: Pipeline, machines):
    url = start_serving(pipeline, free_port_base())
    server_key = curve_keys.load_public("server")
    friend, stranger = machines("friend"), machines("stranger")
    curve_keys.allow(friend.generate_keys(), "friend")
    stranger.generate_keys()
    for each in (friend, stranger):
        assert each.pmctl("keys", "trust", "127.0.0.1", server_key).returncode == 0
    tmux = ["tmux", "-L", f"pmremote{os.getpid()}"]

    def run_in_tmux(machine: Machine, window: str, done: Path) -> None:
        env = " ".join(f"{k}={shlex.quote(machine.env[k])}" for k in
                       ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "PATH"))
        command = (f"cd {shlex.quote(str(REPO))} && env -u NO_COLOR -u PAUSE_MONITOR_CONFIG {env} TERM=xterm-256color "
                   f"{shlex.quote(sys.executable)} -m cli watch --connect {url} 2>{done}.err; echo $? > {done}")
        first = window == "friend"
        start = ["new-session", "-d", "-s", "remote", "-x", "160", "-y", "50"] if first else ["new-window", "-d", "-t", "remote"]
        subprocess.run([*tmux, *start, "-n", window, command], check=True)

    def screen(window: str) -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", f"remote:{window}"],
                              capture_output=True, text=True).stdout

    friend_done, stranger_done = pipeline.tmp / "friend-exit", pipeline.tmp / "stranger-exit"
    try:
        run_in_tmux(friend, "friend", friend_done)
        wait_for(lambda: "rogue processes" in screen("friend"), 20, lambda: f"the remote frame:\n{screen('friend')}")
        assert "live" in screen("friend") and "not running" not in screen("friend")
        run_in_tmux(stranger, "stranger", stranger_done)
        wait_for(lambda: stranger_done.exists() and stranger_done.read_text().strip(), 10, "the refused watch to exit")
        assert stranger_done.read_text().strip() == "1"
        err = Path(f"{stranger_done}.err").read_text()
        assert err.count("\n") == 1 and "refused this client's key" in err
        subprocess.run([*tmux, "send-keys", "-t", "remote:friend", "q"], check=True)
        wait_for(lambda: friend_done.exists() and friend_done.read_text().strip(), 10, "watch to quit on q")
        assert friend_done.read_text().strip() == "0"
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
